"""bnbench's reading half: store -> tidy tables -> statistics -> figures -> one HTML report.

Never imports TensorFlow or Keras (directly or through ``bench``): it reads only the
SQLite store, so a report renders in seconds on any machine. Entry point:
:func:`reports.render.render_report`.
"""
