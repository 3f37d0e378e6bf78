"""One member on its own machine: the secrets bundle it is given, the agent configuration derived from
the document and that bundle, and the systemd unit that runs it (`pgkeel secrets init`, `pgkeel node run`)."""
