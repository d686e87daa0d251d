"""Small utilities named for what they protect: `atomic` (a file is never half-written) and
`pickles` (unpickling resolves only the globals its caller allows)."""
