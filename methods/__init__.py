"""Model zoo (imported as ``adbench_hr.methods``)."""
