"""cards: issue, bind, block, replace and unbind a student's card credential."""
