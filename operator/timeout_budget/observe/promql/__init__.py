"""Safe, batched PromQL for every route's latency quantile (pure: no I/O).

The problem: thousands of ``TimeoutBudget`` resources each name a histogram and a label
selector written by users. Sending one query per route would cost thousands of round trips
per cycle, and pasting user text into PromQL would let a label value such as
``"} or vector(1) #`` rewrite the query. This package

* validates label names, metric names, windows and quantiles, and escapes every value for
  a PromQL double-quoted string, so a route's text can only ever be a literal
  (``literals``; ``SelectorError`` carries a message a user can act on; nothing is sent);
* refuses regexes Prometheus' RE2 would reject or read differently (``re2``);
* turns one route's latency spec into a validated selector, or its ``query`` override with
  the ``{{window}}`` / ``{{quantile}}`` placeholders substituted (``selection``);
* plans as few queries as possible: routes sharing (metric, quantile, window, selector label
  names, extra matchers) form one group, queried as
  ``histogram_quantile(q, sum by (le, <labels>) (rate(<metric>_bucket{<matchers>}[w])))``
  where each label matches the group's values through an RE2 alternation of literally
  quoted values (Go's ``regexp.QuoteMeta``), split into chunks that keep the URL short;
  with it the matching coverage query (which finite ``le`` bounds each route's histogram
  has) (``planning``);
* maps result series back to routes by the *exact* values of the grouping labels, so the
  selection being a superset (a cross product of several labels' values) is harmless
  (``answers``).

Every module here is pure (the import-linter contract of the pure core covers the package).
"""
