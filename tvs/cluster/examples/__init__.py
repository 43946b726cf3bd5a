"""Packaged example cluster configurations (TOML data read by ``ClusterConfig.example``)."""
