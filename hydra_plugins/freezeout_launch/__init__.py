"""Launch plumbing, kept out of the core package: the sweeper that trains each baseline once
(:mod:`.sweeper`) and where parallel jobs run (:mod:`.placement`, GPU and CPU threads)."""
