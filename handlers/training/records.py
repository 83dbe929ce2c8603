"""What a member's trainings leave behind: /forget keeps the seats as anonymous counts and
erases authorship; /me lists the member's trainings.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from handlers import privacy
from storage.training_models import TrainingSeat, TrainingSession


@privacy.forgets
async def forget_seats(session: AsyncSession, member_id: int) -> None:
    """Seats stay as anonymous counts (the member row is emptied); authorship goes."""
    signed = select(TrainingSeat).where(TrainingSeat.signed_up_by == member_id)
    for seat in (await session.exec(signed)).all():
        seat.signed_up_by = None
        session.add(seat)
    created = select(TrainingSession).where(TrainingSession.created_by == member_id)
    for row in (await session.exec(created)).all():
        row.created_by = None
        session.add(row)


@privacy.tells_about
async def trainings_about(session: AsyncSession, member_id: int) -> dict[str, Any]:
    stmt = (
        select(TrainingSeat, TrainingSession)
        .join(TrainingSession, col(TrainingSession.id) == TrainingSeat.session_id)
        .where(TrainingSeat.member_id == member_id)
        .order_by(col(TrainingSession.starts_at))
    )
    return {
        "trainings": [
            {
                "training": s.starts_at.isoformat() if s.starts_at else None,
                "answer": seat.answer,
                "signed_up_by_secretary": seat.signed_up_by is not None,
                "present": seat.present,
                "followup_installed": seat.followup_installed,
                "followup_activated": seat.followup_activated,
            }
            for seat, s in (await session.exec(stmt)).all()
        ]
    }
