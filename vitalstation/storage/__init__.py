"""The only package that imports SQLAlchemy: schema, migrations, the single writer, queries."""
