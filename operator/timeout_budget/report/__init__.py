"""The report step: status patches, Kubernetes Events and the operator's own metrics."""
