// Filled in by the persistence work (issue 15).
