"""A deterministic multi-node simulator that runs the real HA decisions (pgkeel.ha.rules.decide).

Pure Python, no processes or sockets: nodes, their postgres, the coordination store, the network
and the clients are models driven by one seeded event queue, so a seed replays exactly. See
pgkeel.sim.runner for the entry points and pgkeel.sim.checks for what is asserted after every step.
"""
