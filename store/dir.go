package store

// Dir returns the absolute path of the store directory.
func (s *Store) Dir() string { return s.dir }
