"""Generated data sets: every example is produced by code in this package, so nothing
is downloaded and every split is reproducible."""
