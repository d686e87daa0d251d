"""Mesh geometry for the graph decoder: mesh graphs, Laplacians and the Graclus coarsening tree."""
