"""Print the one line describing this machine that results/ tables carry (CPU, GPU, torch)."""

from bdunlearn.reports.machine import describe

if __name__ == "__main__":
    print(describe())
