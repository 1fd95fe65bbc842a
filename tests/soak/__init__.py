"""The soak: random drops, faults and kills against a real daemon, then an audit (`make soak`)."""
