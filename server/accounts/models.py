"""Account tables. Passwords are argon2 hashes; session and invitation tokens are stored as
SHA-256 hashes, so a copy of the database cannot be used to sign in."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class User(Base):
    __tablename__ = "users"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    # None until the invitation is accepted.
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    lang: Mapped[str] = mapped_column(String(2), default="kk")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_login_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class RoleGrant(Base):
    """A role with its scope: operator (no scope), regional_operator (region), school roles
    (school), class_teacher (school + class), parent (children through guardians.user_pk)."""

    __tablename__ = "role_grants"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    region_id: Mapped[str | None] = mapped_column(ForeignKey("regions.id"), default=None)
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id"), default=None)
    class_pk: Mapped[int | None] = mapped_column(ForeignKey("school_classes.pk"), default=None)


class WebSession(Base):
    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user", "user_pk"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)


class Invitation(Base):
    __tablename__ = "invitations"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
