"""The dashboard's pure rules: the portfolio summary, chart series and the combined what-if."""
