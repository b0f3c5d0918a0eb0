"""STREAM benchmark: one kernel description (`kernel`) run on native code, the execution API, cycle models and RTL."""
