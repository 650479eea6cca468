"""Tests of analysis: teacher vs student token-dependency maps, their correlations and figures."""
