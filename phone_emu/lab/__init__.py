"""The lab: fleets of emulated phones, the migration runner, scenarios and reports."""
