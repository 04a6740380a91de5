"""containerd's shim v2 for pyrunc (docs/shim.md). Nothing here is imported by pyrunc's
CLI: the shim is its own resident process."""
