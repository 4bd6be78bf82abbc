"""Database: SQLAlchemy 2 async engine, declarative base, Alembic migrations."""
