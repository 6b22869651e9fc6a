//! Azure CycleCloud backends (work in progress).
