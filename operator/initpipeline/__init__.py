"""InitPipeline: Pods whose start-up is a pipeline of generated init containers."""
