"""The pure core of a reconcile: decide (``ladder.decide``), diff (``diff.changes``) and the
status to report (``status.build``, ``status.changed``).

Nothing here does I/O, reads a clock or imports a client (an import-linter contract checks
it): spec, observation, memory and time go in, values come out, and tables test them.
"""
