"""Analysis of representations and results: alignment/uniformity, retrieval, t-SNE, tables, plots."""
