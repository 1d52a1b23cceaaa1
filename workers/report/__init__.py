"""`alto report`: run the evidence sweeps with the product itself and write what they show.

``alto report run`` expands sweep files exactly as ``POST /api/v1/sweeps`` does, creates
the sweeps and their jobs in the local database, runs each job in this process as
``alto tune`` does (claim, ``Dispatcher.run_job``, local Ray) and then writes the report.
``alto report make`` writes the same report for sweeps already in the database (also
ones a cluster ran after ``alto sweep submit``). Everything in the report comes from the
database: the recommendations (mean and standard deviation over seeds after the
re-evaluation), the flatness of each recommended trial, and the paper's three claims,
each judged from those numbers by the rules in `judge_alpha_sign`, `judge_uplift_growth`
and `judge_flatness`.

The modules, each depending only on those before it: `evidence` (the read model),
`units`, `claims`, `plots`, `provenance`, `tables` (the markdown) and `cli` (the click
commands, the only module that raises click errors).
"""
