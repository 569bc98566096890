"""What every method shares: data, runs, metrics, cache, leaderboard, Java bootstrap."""
