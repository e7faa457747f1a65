"""The run report: ``summary.json`` and ``report/index.html`` with its figures as PNGs beside it.

- :mod:`ddpipe.report.images`: restored and residual images on RA/Dec axes with facets and beam,
  cutouts of the brightest source per direction;
- :mod:`ddpipe.report.solutions`: phase and amplitude against time per direction, minus the truth;
- :mod:`ddpipe.report.cluster`: the DP3 chunk tasks per worker (Gantt chart), wall time per stage;
- :mod:`ddpipe.report.convergence`: the figures of merit over the cycles;
- :mod:`ddpipe.report.page`: the HTML page.
"""

from ddpipe.report.cluster import dask_performance_report
from ddpipe.report.page import RunFailure, write_failed_report, write_report, write_summary

__all__ = ["RunFailure", "dask_performance_report", "write_failed_report", "write_report", "write_summary"]
