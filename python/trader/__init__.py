"""trader: reinforcement-learning trading on crypto limit order books.

The C++ core (``trader._core``) holds the event record, the exact L2 book and the replay; this
package adds the data converters, the command-line tools and (later) the environments and learners.
"""

__version__ = "0.1.0"
