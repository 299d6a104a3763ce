#!/bin/sh
# bsmscan batch job: set up the environment on the execute node, then run Python with the job's
# arguments (-m jobs.batch <step> ...). Written by `python -m jobs.submit` from condor/job_wrapper.sh;
# the lines below come from the config's cluster.prologue and cluster.ship.
@{prologue}
exec @{python} "$@@"
