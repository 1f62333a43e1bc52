"""Developer tools: evaluation and sample generation."""
