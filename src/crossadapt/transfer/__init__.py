"""Non-iterative embedding transfer from teacher to student tables."""
