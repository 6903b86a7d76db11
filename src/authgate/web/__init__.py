"""Hosted pages and the admin console: templates, static files, UI strings and page machinery.

The routes live in ``authgate.surfaces.pages`` (the surface module) and ``authgate.web.admin``;
the rules they apply live in ``authgate.core.flows``.
"""
