//! Kadeploy3 as the `BootOrchestrator` (work in progress).
