"""The wire to hardware: protocol, links, and simulated devices (no torch, Python 3.8)."""
