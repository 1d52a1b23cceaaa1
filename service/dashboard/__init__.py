"""The web dashboard: server-rendered page shells whose scripts read the REST API.

Charts use plotly.js as shipped inside the plotly Python package, served from this
service: deployments may have no internet, so nothing comes from a CDN.
"""
