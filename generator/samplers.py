"""A1111's sampler names and the diffusers scheduler each one is.

Data only, so validating a spec needs no diffusers import; ``render.diffusion``
builds the scheduler. A new sampler is one line here.
"""

from __future__ import annotations

from typing import Any

#: A1111 sampler name -> (diffusers scheduler class, extra scheduler config).
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DDIM": ("DDIMScheduler", {}),
    "PLMS": ("PNDMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
}

#: The samplers A1111 draws fresh noise for at each step: ENSD changes their pictures
#: (and only theirs does A1111's infotext name).
ANCESTRAL = ("Euler a", "DPM2 a", "DPM++ SDE", "DPM++ 2M SDE")

#: A1111 >= 1.9's ``Schedule type``s genimg renders. ``Automatic`` is each sampler's own
#: (``AUTOMATIC``); the others give diffusers' schedulers these options.
SCHEDULE_OPTIONS: dict[str, dict[str, Any]] = {
    "Uniform": {},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
}
SCHEDULE_TYPES = ("Automatic", *SCHEDULE_OPTIONS)
#: A1111's Automatic schedule of a sampler (its k-diffusion sampler table); Uniform if
#: not named here.
AUTOMATIC = {"DPM++ 2M": "Karras", "DPM++ SDE": "Karras", "DPM++ 2M SDE": "Exponential"}
#: The schedules whose sigmas genimg's scheduler for the sampler makes as k-diffusion
#: makes them for A1111 (tests/test_schedules.py compares them): a sampler and schedule
#: not listed is refused rather than drawn with other sigmas.
EXACT_SCHEDULES: dict[str, tuple[str, ...]] = {
    "Euler a": ("Uniform",),
    "Euler": ("Uniform", "Karras", "Exponential"),
    "LMS": ("Uniform", "Karras", "Exponential"),
    "DPM++ 2M": ("Karras", "Exponential"),
    "DPM++ SDE": ("Karras", "Exponential"),
    "DPM++ 2M SDE": ("Karras", "Exponential"),
    "UniPC": ("Karras", "Exponential"),
}


def schedule_of(sampler: str, schedule_type: str) -> str:
    """The schedule A1111 runs for ``sampler`` with ``schedule_type`` (Automatic resolved)."""
    return AUTOMATIC.get(sampler, "Uniform") if schedule_type == "Automatic" else schedule_type


def schedule_problem(sampler: str, schedule_type: str) -> str | None:
    """Why genimg cannot draw ``sampler`` with A1111's ``schedule_type``, or None."""
    schedule = schedule_of(sampler, schedule_type)
    exact = EXACT_SCHEDULES.get(sampler, ())
    if schedule in exact:
        return None
    if sampler.endswith(" Karras"):
        return (f"'sampler: {sampler}' names its schedule already: write 'sampler: "
                f"{sampler.removesuffix(' Karras')}' with 'schedule_type: Karras'")
    which = f"{schedule_type} ({schedule})" if schedule != schedule_type else schedule
    can = ", ".join(exact) if exact else "none yet"
    return f"genimg cannot draw {sampler!r} with the {which} schedule (it can: {can})"


def scheduler_for(sampler: str, schedule_type: str | None) -> tuple[str, dict[str, Any]]:
    """The diffusers scheduler class and options of ``sampler`` (with A1111's schedule)."""
    cls, options = SAMPLERS[sampler]
    if schedule_type is None:
        return cls, options
    return cls, {**options, **SCHEDULE_OPTIONS[schedule_of(sampler, schedule_type)]}
