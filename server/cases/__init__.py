"""Cases (办件): the record every appointment, session, snapshot and letter attaches to."""
