"""TunixHack: verified reasoning traces from a local teacher, and Tunix post-training."""
