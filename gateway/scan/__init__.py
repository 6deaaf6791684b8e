"""The cookie scanner (issue 13): crawl a site in Chromium, record what each page sets in three consent
states, and report it against the catalog and the site's configuration.

``observations`` is the contract between the browser side (``crawl``, ``browse``, ``run``) and the report
side (``report``, ``report_html``): a report can be built from a recorded crawl without a browser.
"""
