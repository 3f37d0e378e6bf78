"""Remote control: status, switchover, failover and history of a cluster on other machines, through any
member's API or the store (`pgkeel status --api … | --store … | -f cluster.yaml`)."""
