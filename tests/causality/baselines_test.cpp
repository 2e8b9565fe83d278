// filled in by the baselines work
