"""What a study evaluates, written into the study itself by ``spy-rl tune init``.

Workers read the definition from the storage instead of their own settings, so that workers on
different machines (or with a different ``.env``) still evaluate one and the same thing: the same
data request and settings, fold plan, seeds and search space. What is local to a worker (its
folders, its log format) stays the worker's own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from finrl.errors import ConfigError
from finrl.research.folds import FoldPlan
from finrl.research.tune.space import SearchSpace, parse_search_space
from finrl.research.tune.storage import StorageError

if TYPE_CHECKING:
    import optuna

DEFINITION_FORMAT = 1
STUDY_DEFINITION_ATTR = "finrl_tune"  # the study's user attribute holding its definition


@dataclass(frozen=True)
class StudyDefinition:
    settings: dict[str, Any]  # the caller's settings snapshot (no secrets); this layer does not read it
    plan: FoldPlan
    seeds: tuple[int, ...]
    space: SearchSpace

    def to_json(self) -> dict[str, Any]:
        plan = {k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(self.plan).items()}
        return {
            "format": DEFINITION_FORMAT,
            "settings": self.settings,
            "plan": plan,
            "seeds": list(self.seeds),
            "search_space": self.space.to_json(),
        }

    @classmethod
    def from_json(cls, document: Any, study_name: str) -> StudyDefinition:
        if not isinstance(document, dict) or document.get("format") != DEFINITION_FORMAT:
            raise StorageError(f"study {study_name!r} was not created by spy-rl tune init (or by another version)")
        plan = dict(document["plan"])
        plan["start"], plan["end"] = date.fromisoformat(plan["start"]), date.fromisoformat(plan["end"])
        return cls(
            settings=dict(document["settings"]),
            plan=FoldPlan(**plan),
            seeds=tuple(int(s) for s in document["seeds"]),
            space=parse_search_space(document["search_space"], f"of study {study_name!r}"),
        )


def store_definition(study: optuna.Study, definition: StudyDefinition) -> bool:
    """Write ``definition`` into a new study; on an existing one, check it is the same.

    Returns whether it was written now. A second ``tune init`` with other arguments is refused:
    the trials already in the study were evaluated under the first definition.
    """
    document = definition.to_json()
    stored = study.user_attrs.get(STUDY_DEFINITION_ATTR)
    if stored is None:
        study.set_user_attr(STUDY_DEFINITION_ATTR, document)
        return True
    if stored != document:
        changed = sorted(k for k in document if stored.get(k) != document[k])
        raise ConfigError(
            f"study {study.study_name!r} already exists with another definition ({', '.join(changed)} differ): "
            "choose another --study name"
        )
    return False


def read_definition(study: optuna.Study) -> StudyDefinition:
    return StudyDefinition.from_json(study.user_attrs.get(STUDY_DEFINITION_ATTR), study.study_name)
