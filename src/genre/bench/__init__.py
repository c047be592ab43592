"""The research lab: the paper's protocol, metrics, benchmark, experiments, speed and pictures."""
