"""Errors a user can cause, as opposed to bugs.

Entry points catch :class:`FinRLError` and print its message as one line with a non-zero exit
code; anything else is a bug and keeps its traceback.
"""


class FinRLError(Exception):
    """A problem the user can fix (bad input, missing data, wrong settings)."""

    exit_code = 1


class ConfigError(FinRLError):
    """Settings or command-line values are invalid."""

    exit_code = 2


class DataError(FinRLError):
    """Market data cannot be obtained or is unusable."""


class DownloadError(DataError):
    """A market-data download failed: no network, a blocked host, a provider down or silent.

    The data loader adds the flags that work offline to its message (it knows which command's they are).
    """


class DataValidationError(DataError):
    """Market data failed validation; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"{source}: {len(problems)} data problem(s): {shown}")
        self._init_args = (source, problems)

    def __reduce__(self) -> tuple[object, ...]:  # a spawn pool's worker sends it to the parent pickled
        return (type(self), self._init_args, self.__dict__)


class FileSystemError(FinRLError):
    """The operating system refused a read or write (permissions, read-only or full file system, a folder or
    file in the way, a missing parent, a name too long): one line naming the path and what to do."""

    def __init__(self, path: object, problem: str, hint: str, errno: int | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        self.errno = errno
        shown = (
            self.path if len(self.path) <= 160 else f"{self.path[:70]}...{self.path[-70:]}"
        )  # error lines are capped
        super().__init__(f"{shown}: {problem}: {hint}")

    def __reduce__(self) -> tuple[object, ...]:  # a spawn pool's worker sends it to the parent pickled
        return (type(self), (self.path, self.problem, self.hint, self.errno), self.__dict__)
