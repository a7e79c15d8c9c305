"""Real test boards: an OpenSSH server on loopback, and an emulated arm64 root file system."""
