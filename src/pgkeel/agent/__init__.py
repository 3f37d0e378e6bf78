"""The composition root: the agent process's entry point, wiring the store, postgres, the fence,
the HA loop and the HTTP API together. Nothing else imports from here but the CLI."""
