"""HA decisions (pure) and the agent that acts on them."""
