"""Reports for managers: hardware renewal plan and server use (`nettvakt report`)."""
