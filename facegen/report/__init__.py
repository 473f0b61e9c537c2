"""The study's one-page HTML report: building blocks (``page``), what goes in it (``study``), and a
headless-Chromium screenshot to check how it looks (``screenshot``)."""
