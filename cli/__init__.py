"""The `dgpt` command: the core's own commands, dispatching to the roles' (`oracle.cli`,
`aggregator.cli`) and to the harness's demo. Lives outside the core, which imports no role."""
