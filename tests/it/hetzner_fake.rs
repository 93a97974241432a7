//! A stateful fake of the Hetzner Cloud API (filled in by its own change).
