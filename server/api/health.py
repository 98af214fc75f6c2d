"""Is the server up and its database answering? Unauthenticated and cheap: stations probe it
while they wait to resend, load balancers and monitors poll it."""

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.api.deps import Context
from server.domain.errors import Unavailable

router = APIRouter(prefix="/api", tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/health", responses={503: {"description": "The database does not answer."}})
def health(context: Context) -> Health:
    try:
        with context.db.read_session() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        raise Unavailable("database", type(error).__name__) from error
    return Health(status="ok")
