"""The reliability lab: real clusters in network namespaces, real faults, checks over client logs.

Used by `pgkeel bench` and tests/e2e/test_lab_*.py. Everything it creates (namespaces, a bridge,
veths, etcd members, agents, postgres, temp dirs) it removes again, also on failure.
"""
