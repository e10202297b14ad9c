"""The local sandbox: real control plane, Prometheus, Cloudflare emulator, synthetic origin."""
